"""The HTTP side of ``mailgate serve``: health, metrics, the JSON API and the ops dashboard."""
