"""The workflow's planning: the config (schema, defaults, files, checks), the plan of runs, the sizing of
jobs and the checks before one trains, code versions, labels and the output folders."""
