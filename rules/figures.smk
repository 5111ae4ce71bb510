rule vega_bundle:
    input:
        library=library("figures/save.py"),
    output:
        "results/vega/vega-embed.js",
    log:
        "logs/vega_bundle.log",
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/vega_bundle.py"


rule figure:
    input:
        unpack(figure_tables),
        bundle="results/vega/vega-embed.js",
        library=figure_library,
    output:
        html=report(
            "results/figures/{name}.html",
            caption="../report/figure.rst",
            category=figure_category,
            subcategory="{name}",
            labels={"figure": "{name}", "view": "interactive (HTML)"},
        ),
        image=report(
            "results/figures/{name}.svg",
            caption="../report/figure.rst",
            category=figure_category,
            subcategory="{name}",
            labels={"figure": "{name}", "view": "static (SVG)"},
        ),
    params:
        figure=lambda wildcards: config["figures"][wildcards.name],
        caption=figure_caption,
    log:
        "logs/figures/{name}.log",
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/figure.py"


rule landscape:
    input:
        unpack(run_data),
        checkpoints="results/runs/{run}/checkpoints",
        library=library("landscape.py"),
    output:
        "results/runs/{run}/landscape.parquet",
    params:
        spec=run_spec_json,
        device=config["device"],
        data_root=DATA_ROOT,
        deterministic=config["deterministic"],
    threads: config["threads"]
    resources:
        gpu=one_gpu,
        nodes=1,
        cpus_per_gpu=config["threads"],
        mem_mb=reference_mem_mb,
        runtime=landscape_runtime,
    log:
        "logs/landscape/{run}.log",
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/landscape.py"


for figure_name in config["figures"]:

    rule:
        name:
            f"figure_{figure_name}"
        input:
            f"results/figures/{figure_name}.html",
            f"results/figures/{figure_name}.svg",
