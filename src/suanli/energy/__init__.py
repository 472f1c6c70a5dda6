"""Energy behind the compute: tariffs, carbon intensity, PUE; the kWh, kg CO2 and CNY of a run."""
