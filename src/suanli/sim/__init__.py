"""What-if simulation of the scheduler over recorded or generated job traces."""
