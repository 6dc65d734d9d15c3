"""The catalogue: every workload, registered where it is defined, and what it should cost.

Importing the package registers every definition module, ops first (the grids and listings keep this order).
"""

# isort: off
from bench_lib.catalogue import ops, blocks, composites, networks  # noqa: F401  (registration)
# isort: on
