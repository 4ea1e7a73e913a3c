"""Rollouts: stages, guardrails and the controller that moves traffic while watching them."""
