"""ringfuse-bench: compare FUSE transports side by side.

The package is split so that everything that parses or formats can be unit-tested without a
mount: fio.py and mdbench.py build command lines and parse their JSON, stats.py summarises
repeated samples, report.py renders the table, the JSON file and the SVG chart, mounts.py
starts and stops filesystem daemons, cells.py defines the workload matrix and cli.py ties it
together.
"""

__version__ = "0.1.0"
