"""The job package every job ships beside its script: one set of rules, one set of names.

Preprocess reads the user's CSV; Train and Evaluate read the splits Preprocess wrote; the serving
code (endpoint and batch transform) reads request records. All of them read, name and report
through this package, so a file, a value, a missing value and a category mean the same thing in
every job, and a path or a file name is written once:

* :mod:`tabular.contract`: SageMaker's names (container paths and environment, content types,
  API statuses and enums, Model Monitor files); every layer of the project imports them;
* :mod:`tabular.names`: the names jobs share with the builders (splits, files, paths, the
  evaluation report and its metrics, shared defaults);
* :mod:`tabular.job`: a job's entry point (command line, failure report, inputs);
* :mod:`tabular.files`: outputs written whole (a temporary name, then a rename), archives
  extracted safely;
* :mod:`tabular.settings`: what Preprocess is told about the data;
* :mod:`tabular.dialect`: the configured CSV dialect and the canonical one jobs exchange;
* :mod:`tabular.csvio`: reading a CSV file or a request body, writing a canonical file;
* :mod:`tabular.values`: what is a number, what is missing, what a bad value's fix is;
* :mod:`tabular.feature_types`: which columns are numbers and which categories;
* :mod:`tabular.target`: the target column checked and encoded;
* :mod:`tabular.features`: the fitted feature transformer and the model's matrix;
* :mod:`tabular.schema`: schema.json, the splits, the matrix every job builds;
* :mod:`tabular.errors`: the errors jobs report, and how a message names a row.
* :mod:`tabular.memory`: memory a job is done with, handed back before its next phase.

Job code only: no import of the SageMaker SDK, boto3 or the project's other packages (it
ships alone). Editing any module changes every job's code, and so every job step's cache key.
"""
