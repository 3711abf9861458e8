"""dynnas: how we choose — search algorithms, Pareto sets, export, reports and the CLI."""
