"""Static files served to websites: the number-swap script (swap.js) and its demo page."""
