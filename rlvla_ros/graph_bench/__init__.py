"""Benchmarks and checks of a running node graph (`rlvla bench record|fuzz`): they launch the graph or
nodes as processes and measure or attack it from outside, over topics and services."""
