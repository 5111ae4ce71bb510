rule prep:
    wildcard_constraints:
        dataset=one_of(GENERATED),
    output:
        tensors="results/data/{dataset}/tensors.pt",
        manifest="results/data/{dataset}/manifest.json",
    params:
        data=dataset_spec_json,
        code=preparation_version(),
    log:
        "logs/prep/{dataset}.log",
    cache: "omit-software"
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/prep.py"


rule fingerprint:
    wildcard_constraints:
        dataset=one_of(EXTERNAL),
    output:
        manifest="results/data/{dataset}/manifest.json",
    params:
        data=dataset_spec_json,
        data_root=DATA_ROOT,
        code=preparation_version(),
    log:
        "logs/prep/{dataset}.log",
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/fingerprint.py"
