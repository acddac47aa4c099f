import redis

# Connect to Redis
r = redis.Redis(host='localhost', port=6379, db=0)

# Publish message
r.publish('channel', 'Hello, subscribers!')

# Subscribe to channel
pubsub = r.pubsub()
pubsub.subscribe('channel')

for message in pubsub.listen():
    if message['type'] == 'message':
        print(f"Received: {message['data']}")
