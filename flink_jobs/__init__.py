"""PyFlink outlier split job."""
