"""Loads every page of a Confluence space with LangChain's ConfluenceLoader
(langchain-community + atlassian-python-api) and prints one JSON line:
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

    from langchain_community.document_loaders import ConfluenceLoader

    loader = ConfluenceLoader(
        url=args.url,
        username=args.user,
        api_key=args.token,
        cloud=True,
        space_key=args.space,
        limit=100,  # the largest page size v1 allows with bodies expanded
        max_pages=1_000_000,
        include_attachments=False,
        # include_restricted_content stays at its default (False): LangChain then asks
        # /content/{id}/restriction/byOperation once per page, as it does against Cloud.
    )
    started = time.perf_counter()
    documents = loader.load()
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "peer": "langchain",
                "pages": len(documents),
                "chars": sum(len(d.page_content) for d in documents),
                "seconds": seconds,
                "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
