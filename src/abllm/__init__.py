"""abllm: production A/B testing and gradual rollout for LLM features."""
