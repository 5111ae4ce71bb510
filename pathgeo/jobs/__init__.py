"""The jobs the workflow's rules run: the common setup of a job, reference training, the replay and the
landscape."""
