"""Text stages' domain logic: chunking, grounding quotes in the transcript, quote extraction, summaries.

Nothing here knows about Temporal; activities call these functions and store what they return.
"""
