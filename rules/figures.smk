rule figure:
    input:
        tables=figure_tables,
        library=figure_library,
    output:
        html="results/figures/{name}.html",
        image="results/figures/{name}.svg",
    params:
        figure=lambda wildcards: config["figures"][wildcards.name],
    log:
        "logs/figures/{name}.log",
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/figure.py"


for figure_name in config["figures"]:

    rule:
        name:
            f"figure_{figure_name}"
        input:
            f"results/figures/{figure_name}.html",
            f"results/figures/{figure_name}.svg",
