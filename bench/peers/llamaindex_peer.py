"""Loads every page of a Confluence space with LlamaIndex's ConfluenceReader
(llama-index-readers-confluence) and prints one JSON line:
{"peer", "pages", "chars", "seconds", "peak_rss_kib"}.

Used by connector-bench --peers against the fake Confluence in legacy v1 mode."""

import argparse
import json
import resource
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="site base with /wiki, e.g. http://127.0.0.1:PORT/wiki")
    parser.add_argument("--user", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--space", required=True)
    args = parser.parse_args()

    from llama_index.readers.confluence import ConfluenceReader

    reader = ConfluenceReader(base_url=args.url, user_name=args.user, password=args.token, cloud=True)
    started = time.perf_counter()
    # max_num_results=None crashes atlassian-python-api (it compares len(results) <= None);
    # a bound larger than any space means "all pages".
    documents = reader.load_data(
        space_key=args.space, include_attachments=False, page_status="current", max_num_results=1_000_000
    )
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "peer": "llamaindex",
                "pages": len(documents),
                "chars": sum(len(d.text) for d in documents),
                "seconds": seconds,
                "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
