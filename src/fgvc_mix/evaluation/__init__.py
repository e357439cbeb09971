"""Measuring a model: checkpoint loading and test evaluation, reports, label noise, CAM part share, and
the TensorBoard dashboards that log those measures while a model trains. Library code: the commands at
``fgvc_mix/*.py`` call it."""
