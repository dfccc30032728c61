from twilio_video_playground.demo.cli import main

raise SystemExit(main())
