"""Serving: the user's inference module run as SageMaker's serving containers run it.

:mod:`.handler` loads the module and its model and answers one request at a time; batch
transform (:mod:`.batch`, ``python -m runtime.serving.batch``) and the local model server
(:mod:`.server`, gunicorn) use it; :mod:`.router` puts production variants behind one endpoint.
"""

from runtime.serving.handler import Handler, ServingError, UserCodeError, load_handler

__all__ = ["Handler", "ServingError", "UserCodeError", "load_handler"]
