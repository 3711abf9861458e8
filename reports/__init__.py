"""dynnas reports: run folders in, HTML reports, plots and tables out.

:mod:`reports.run_folder` defines the run-folder contract (file names, CSV columns, the typed
``run.json``, subnet packages) that ``nas`` writes and everything reads; :mod:`reports.html`
writes the report. Imports flow one way: ``nas → reports → predictors → supernet`` (and
``hw_profiles``); nothing here imports ``nas``. Importing this package loads nothing heavy.
"""
