"""Tools built on the public library: the console consumer and producer (``console``,
``publish``), ``inspect``, ``demo``, the order ``generator``, text output (``render``,
``pretty``) and the perf tools (``bench*``). Only the command line imports them."""
