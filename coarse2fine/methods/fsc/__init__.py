"""F-SC: fixed sub-centre heads, their comparison heads, and the paper recipes."""
