"""Deploy an approved model package to an endpoint: plan, apply, verify, smoke-test, roll back.

Pure modules build everything as data from the config and what is live; one module talks to AWS:

* `plan`: the rollout plan (steps, traffic, baking times) and the alarm definitions, plain data
  that SageMaker's DeploymentConfig and a local router can both carry out;
* `names`: tag keys and the deterministic names of what deploy creates;
* `package`: what deploy reads from a described model package;
* `requests`: one small builder per AWS request;
* `deployment`: the whole desired state of a stage for a package, against the live state;
* `history`: the deployment history kept in the endpoint's tags;
* `smoke`: the smoke sample the pipeline recorded, and the comparison of the endpoint's answers;
* `show`: the plan, progress and status as text;
* `apply`: the only caller of AWS: reads the live state, applies the requests in order, waits,
  verifies, invokes the endpoint, rolls back, undeploys;
* `golden`: the committed request files of the reference stages;
* `cli`: the verbs deploy, rollback, undeploy, status, smoke.
"""
