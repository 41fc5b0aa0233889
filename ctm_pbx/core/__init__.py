"""Pure domain logic: no I/O, no asyncio, no sqlite, no yaml. Time is passed in."""
