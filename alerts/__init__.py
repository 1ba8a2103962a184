"""Alerts on demand anomalies and on the outlier split's rate: rules, feedback, delivery (SNS, a log line, a JSON-lines
file, a webhook), each alert once."""
