"""ringfuse-bench: compare FUSE transports and servers side by side.

The package is split so that everything that parses or formats can be unit-tested without a
mount: fio.py and mdbench.py build command lines and parse their JSON, stats.py summarises
repeated samples, report.py renders the tables, the JSON file and the SVG charts, configs.py
and peers.py make the configurations (ringfuse's, libfuse's, native), mounts.py starts and
stops filesystem daemons, procstat.py finds a daemon's processes and reads their CPU time,
perfrec.py records profiles, cells.py defines the workload matrix and cli.py ties it together.
"""

__version__ = "0.2.0"
