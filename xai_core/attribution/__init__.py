"""Attribution methods: image methods in `image`, tabular ones in `tabular` and `shapley`."""
