"""The feedback loop: returned mail, complaints, unsubscribes and what they do to subscribers."""

from dispatcher.feedback.policy import Decision, Policy, apply, sweep_smtp_bounces, unsubscribe

__all__ = ["Decision", "Policy", "apply", "sweep_smtp_bounces", "unsubscribe"]
