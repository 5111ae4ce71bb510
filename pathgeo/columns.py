"""Column names shared by the stages. Torch-free, so aggregation and figures import it cheaply."""

# Per-step measurements written by the replay (and aggregated per epoch).
METRICS = (
    "lr",
    "loss",
    "rsi",
    "eb",
    "gamma",
    "lolr",
    "grad_norm",
    "dist",
    "rsi_wd",
    "eb_wd",
    "gamma_wd",
    "lolr_wd",
    "grad_norm_wd",
    "upd_norm",
    "upd_rsi",
    "upd_gamma",
)

# A run's factors: the columns figures facet and colour by (RunSpec.factors()).
FACTORS = ("dataset", "model", "width", "optimizer", "peak_lr", "batch_size", "seed", "weight_decay", "schedule", "epochs")
