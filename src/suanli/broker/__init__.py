"""The control loop between the store of record, the scheduler and the sites' back-ends."""
