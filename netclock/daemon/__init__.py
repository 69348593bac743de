"""The netclock daemon: runs sources, the discipline and publication on one asyncio loop."""
