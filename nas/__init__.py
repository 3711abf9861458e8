"""dynnas: how we choose — search algorithms, Pareto sets, export and the CLI (reports live in reports/)."""
