"""Thin bridges to other engines, each behind its own optional extra.

``textcls.integrations.dask`` (``pip install 'textcls[dask]'``): batch prediction over files too
large for one machine, in a Dask cluster's partitions, with the model loaded once per worker.

Nothing here is imported by ``import textcls``: an integration imports its engine when it is used.
"""
