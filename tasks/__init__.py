"""Prefect tasks: one side effect each, a few lines calling the core library."""
