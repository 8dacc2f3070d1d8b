"""The job package every job ships beside its script: one set of rules for reading tabular data.

Preprocess reads the user's CSV; Train and Evaluate read the splits Preprocess wrote; the serving
code (endpoint and batch transform) reads request records. All of them read through this
package, so a file, a value, a missing value and a category mean the same thing in every job:

* :mod:`tabular.dialect`: the configured CSV dialect (delimiter, decimal mark, thousands
  separator, missing-value spellings) and the canonical dialect of the files jobs exchange;
* :mod:`tabular.csvio`: reading a CSV file or a request body, writing a canonical file;
* :mod:`tabular.values`: what is a number, what is missing, what a bad value's fix is;
* :mod:`tabular.features`: the fitted feature transformer and the model's matrix;
* :mod:`tabular.failure`: where a job writes why it failed (SageMaker's per-job contract).

Job code only: no import of the SageMaker SDK, boto3 or the pipeline packages.
"""
