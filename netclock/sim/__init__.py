"""Deterministic network clock simulator (the clknetsim model), pure and seeded.

* :mod:`~netclock.sim.clock`: oscillators mapping true time to a node's reading;
* :mod:`~netclock.sim.link`: one-way links (delay, jitter, asymmetry, loss, reordering, spikes);
* :mod:`~netclock.sim.scheduler`: the event heap on true time;
* :mod:`~netclock.sim.network`: named nodes exchanging bytes with RX/TX timestamps, driving any
  sans-IO core through a small adapter;
* :mod:`~netclock.sim.twoway`: a master/slave two-way exchange feeding an estimator;
* :mod:`~netclock.sim.metrics`, :mod:`~netclock.sim.scenario`: scoring and whole runs.
"""
