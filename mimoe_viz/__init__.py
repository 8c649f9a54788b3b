"""mimoe_viz: figures and widgets that read mimoe_core result objects (never trains)."""
