"""Building objects from Hydra configs, with the user's mistakes reported as themselves."""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate


def build_from_config(config: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``, re-raising a constructor's ``ValueError``/``OSError`` unwrapped.

    Hydra wraps every constructor error in ``InstantiationException`` around a repr of
    the original; a wrong option should read as the one message that names it.
    """
    try:
        return instantiate(config, **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, ValueError | OSError):
            raise error.__cause__ from None
        raise
