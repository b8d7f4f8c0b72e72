api=${LORAHUB_API:-http://localhost:7071/api}
key=${LORAHUB_KEY:-local}      # a function key; Core Tools accepts any (see "Function keys")
curl -sw '\n' $api/health                                                        # {"status":"ok","store":"blob"}
curl -sw '\n' -H "x-functions-key: $key" $api/modules                           # lora_0, lora_1, lora_2
started=$(curl -s -X POST $api/compositions -H "x-functions-key: $key" -H 'Content-Type: application/json' \
     -d @examples/walkthrough/yes-no-request.json)
echo "$started"                                                            # 202 {"id":"yes-no-<16 hex>","started":true,...}
id=$(echo "$started" | grep -o '"id":"[^"]*"' | cut -d'"' -f4)
until curl -s -H "x-functions-key: $key" $api/compositions/$id | grep -qE '"status":"(Completed|Failed|Terminated)"'; do sleep 1; done
curl -sw '\n' -H "x-functions-key: $key" $api/compositions/$id                   # "status":"Completed", "result":{"weights":[...],...}
curl -sw '\n' -H "x-functions-key: $key" $api/adapters/yes-no                    # lorahub.json: modules, weights, history
curl -s -H "x-functions-key: $key" -o "${TMPDIR:-/tmp}/yes-no-report.png" $api/adapters/yes-no/report.png
curl -sw '\n' -X POST $api/adapters/yes-no/generate -H "x-functions-key: $key" -H 'Content-Type: application/json' \
     -d '{"inputs": ["Is snow white? yes or no"], "max_new_tokens": 8}'    # {"task":"yes-no","outputs":["..."]}
curl -sw '\n' -X DELETE -H "x-functions-key: $key" $api/compositions/$id         # 409 now (it ended); 202 stops a running one
