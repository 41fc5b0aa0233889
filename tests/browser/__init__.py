"""Browser tests of swap.js in headless Chromium."""
