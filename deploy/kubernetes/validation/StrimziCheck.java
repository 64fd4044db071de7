// Reads Strimzi resources with Strimzi's own model classes (io.strimzi:api), strictly:
// a field the model does not have is an error, as is a kind or apiVersion it does not serve.
//
// Strimzi's classes keep unknown fields aside (@JsonAnySetter) and its operator only warns
// about them; here the any-setters are switched off, so Jackson refuses them with their path.
//
// Input on stdin: a JSON array of resources. Output: one line per resource, "ok Kind/name"
// or "error Kind/name: reason". Exit status 1 if any was refused.
//
//   java -cp 'var/deploy-schemas/strimzi-1.2.0/*' deploy/kubernetes/validation/StrimziCheck.java < resources.json

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.introspect.Annotated;
import com.fasterxml.jackson.databind.introspect.JacksonAnnotationIntrospector;
import io.strimzi.api.kafka.model.kafka.Kafka;
import io.strimzi.api.kafka.model.nodepool.KafkaNodePool;
import io.strimzi.api.kafka.model.topic.KafkaTopic;
import java.util.List;
import java.util.Map;

public class StrimziCheck {
    record Model(Class<?> type, String group, List<String> versions) {}

    static final Map<String, Model> MODELS = Map.of(
            Kafka.RESOURCE_KIND, new Model(Kafka.class, Kafka.RESOURCE_GROUP, Kafka.VERSIONS),
            KafkaNodePool.RESOURCE_KIND,
            new Model(KafkaNodePool.class, KafkaNodePool.RESOURCE_GROUP, KafkaNodePool.VERSIONS),
            KafkaTopic.RESOURCE_KIND, new Model(KafkaTopic.class, KafkaTopic.RESOURCE_GROUP, KafkaTopic.VERSIONS));

    /** Jackson's introspector without any-setters: unknown properties reach FAIL_ON_UNKNOWN_PROPERTIES. */
    static final class NoAnySetter extends JacksonAnnotationIntrospector {
        @Override
        public Boolean hasAnySetter(Annotated annotated) {
            return Boolean.FALSE;
        }
    }

    public static void main(String[] args) throws Exception {
        ObjectMapper mapper = new ObjectMapper()
                .setAnnotationIntrospector(new NoAnySetter())
                .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
                .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
                .enable(DeserializationFeature.FAIL_ON_NUMBERS_FOR_ENUMS);
        JsonNode resources = mapper.readTree(System.in);
        boolean refused = false;
        for (JsonNode resource : resources) {
            String kind = resource.path("kind").asText();
            String name = kind + "/" + resource.path("metadata").path("name").asText();
            String problem = check(mapper, resource, kind);
            if (problem == null) {
                System.out.println("ok " + name);
            } else {
                refused = true;
                System.out.println("error " + name + ": " + problem.replace('\n', ' '));
            }
        }
        System.exit(refused ? 1 : 0);
    }

    static String check(ObjectMapper mapper, JsonNode resource, String kind) {
        Model model = MODELS.get(kind);
        if (model == null) {
            return "not a kind this check knows: " + MODELS.keySet();
        }
        String apiVersion = resource.path("apiVersion").asText();
        int slash = apiVersion.indexOf('/');
        String group = slash < 0 ? "" : apiVersion.substring(0, slash);
        String version = apiVersion.substring(slash + 1);
        if (!group.equals(model.group()) || !model.versions().contains(version)) {
            return "apiVersion " + apiVersion + " is not served; Strimzi's model serves "
                    + model.group() + "/" + model.versions();
        }
        try {
            mapper.treeToValue(resource, model.type());
            return null;
        } catch (Exception e) {
            return e.getMessage();
        }
    }
}
