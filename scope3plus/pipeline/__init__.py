"""The daily pipeline: ingest → gate → compute → rollup, as small functions over DataFrames."""
