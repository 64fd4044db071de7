"""The display gateway: venue screens fed by Server-Sent Events, built only from Kafka topics.

Data flows one way: ``follower`` (a Kafka consumer thread) → ``hub`` (the state and
one ``channel`` per venue, on the event loop) → ``sse`` (one bounded stream per
screen). Nothing here writes to Kafka or to a database.
"""
