{
  "targets": [
    {
      "target_name": "hard_exit",
      "sources": ["hard_exit.c"]
    }
  ]
}
