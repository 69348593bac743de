"""netclock capture agents: stamp frames with the subsystem's capture time, in the shared domain."""
