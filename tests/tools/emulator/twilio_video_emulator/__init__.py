"""A Twilio emulator for tests and the playground: Video, API keys, Messaging, Studio, Verify and SendGrid
on 127.0.0.1, held to Twilio's OpenAPI specs. Its own distribution: it imports nothing of the operator."""
