"""The workflow's own machinery: the plan (datasets, systems, family records), where every file lives, the records and checks of outputs, model fetches."""
