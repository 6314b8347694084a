"""The recipes' case sections: one module per recipe with its pydantic sections for data, model, training and
sampling, its `check` across sections and its `register(Recipe(...))`; `common` holds the sections recipes share.
Nothing here imports a training loop or the runner."""
