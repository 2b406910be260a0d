from hybrid_rag.cli import main

main()
