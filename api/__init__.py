"""The forecast API: one product's forecast (DynamoDB-cached), outliers, and the dashboard page."""
