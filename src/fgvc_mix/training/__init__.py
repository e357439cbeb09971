"""Running a training: the LightningModule, the run's config, its option and resume checks, pre-emption,
run directories, logging and sweep summaries. Library code: the commands at ``fgvc_mix/*.py`` call it."""
