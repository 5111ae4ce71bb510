# pathgeo: the geometry of optimization paths, from dataset to figures.
#   snakemake --cores all                          the whole DAG on config/config.yaml
#   snakemake --cores all figure_gamma_by_seed     one figure and only what it needs
#   snakemake -n | --dag | --rulegraph             inspect the plan
#   snakemake --report report.zip                  the figures and the claims table with their captions


import os

from snakemake.logging import logger

from pathgeo.planning.config_check import ConfigCheckError, check_config
from pathgeo.planning.outputs import OutputsError, config_name, config_sources, owner_problem, record_owner

# The workflow's config: the --configfile files, else the embedded default (config/config.yaml beside this file, so
# that --directory works without a --configfile; a --configfile replaces the default rather than being merged into
# it, so its experiments are the only ones planned), and the command line's --config, laid over every setting's
# default (config/defaults.yaml: a file holds only what it changes). pathgeo reads and checks them
# (pathgeo.planning.config_check, as `pathgeo check-config` does) and its reading replaces Snakemake's, which keeps the last
# of two equal keys without a word, names no line for a syntax error and reads 1e-3 as a string (YAML 1.1). A
# problem is logged as the check words it, and Snakemake exits: a WorkflowError raised here would end with a line of
# this file. (Snakemake's command line reads a --configfile before this runs, and stops at a syntax error there with
# only "Config file is not valid JSON or YAML": `pathgeo check-config FILE` names its line.)
DEFAULT_CONFIG = os.path.join(workflow.basedir, "config", "config.yaml")
CONFIG_FILES = workflow.overwrite_configfiles or [DEFAULT_CONFIG]
# The config's name: its tables, figures and report are its own, under results/<name>/ (pathgeo.planning.outputs).
try:
    CHECKED = check_config(CONFIG_FILES, workflow.config_settings.config)
    CONFIG_NAME = config_name(workflow.overwrite_configfiles, DEFAULT_CONFIG)
    CONFIG_SOURCES = config_sources(workflow.overwrite_configfiles, DEFAULT_CONFIG)
    taken = owner_problem(CONFIG_NAME, CONFIG_SOURCES)
    if taken:
        raise OutputsError(taken)
except (ConfigCheckError, OutputsError) as error:
    logger.error(str(error))
    raise SystemExit(1) from None

if not workflow.overwrite_configfiles:

    # So that Snakemake lists the default among the workflow's sources (the report, --archive).
    configfile: DEFAULT_CONFIG


config.clear()
config.update(CHECKED.config)


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/prep.smk"
include: "rules/reference.smk"
include: "rules/replay.smk"
include: "rules/aggregate.smk"
include: "rules/figures.smk"


onstart:
    watch_preemption()
    record_owner(CONFIG_NAME, CONFIG_SOURCES, CHECKED.config)


localrules:
    all,
    aggregate,
    claims,
    zigzag,
    figure,
    vega_bundle,


# Every experiment's tables are outputs of their own (README), not only inputs of figures: a table deleted by hand
# is built again even where no figure reads it, or the figures that read it are older.
rule all:
    default_target: True
    input:
        all_figures(),
        expand(rules.aggregate.output, experiment=list(PLAN.experiments)),
        rules.claims.output,
        rules.zigzag.output,
