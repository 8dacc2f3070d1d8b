"""Serve and deploy approved packages of the local registry on this machine.

`serve --local` runs one model server in the foreground; `deploy --local` keeps an endpoint (a
router and its production variants, as processes) in the workspace and carries out the stage's
rollout plan and alarms on it; `status --local` and `undeploy --local` read and remove it.
"""
